"""``evo probes draft``: a first ``data/probes.json`` drafted from the workspace's own conversations.

Theory of operation. A draft is a proposal for a person to review, never a file that scores
garbage in silence: where the heuristics cannot decide, the draft writes a ``TODO`` marker, and
``evo probes validate`` (and every evaluation, which reads the file through the same check)
refuses the file until the marker is edited away. Everything else in a draft passes the
probes file's rules (``probe_file.check_probes``).

The heuristics, on the stored conversations (``data/conversations.jsonl``):

- a *question-answer* is a user turn and the assistant turn after it, in a conversation with
  karma >= 0, whose prompt is not small talk, tempts no configured law (a law's ``tempting``)
  and whose answer breaks no configured law; the questions whose answers are the same text (after
  case and spaces) are one *fact* (two wordings of one fact: ``recall_facts`` groups them);
- the expected word of a fact is the last word of its answer that is not a common English word
  and not in the question (an answer word the question already says proves nothing); a fact
  without one gets a ``TODO`` expected word;
- ``generalize``: the ``generalize`` newest facts (by their latest cycle), one question each,
  written as ``TODO reword ...: <question>``: a generalize question must be worded as no
  conversation words it, which only a person can do; those facts are not in recall;
- ``recall``: of the other facts, the ``recall`` with the highest karma (mean over their
  conversations; ties: older first), every distinct question of each;
- ``tone``: small talk, the prompts of single-turn conversations with karma >= 0 of at most 8
  words holding a greeting or courtesy word (hello, hi, thanks, bye, how are you, ...), the most
  frequent first;
- ``laws``: every configured law's ``tempting`` prompts, then the prompts whose stored answer
  broke that law (at most 3 a law); a law with neither gets a ``TODO`` prompt. No law configured:
  no law prompt (and no violation is ever counted: nothing is forbidden).

An empty list the gates need (no question-answer, no small talk) gets one ``TODO`` item, so the
file always says what is missing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from adapters.data.conversations import Conversation
from adapters.evaluation.probe_file import TODO, check_probes
from adapters.evaluation.probes import ProbeSet

if TYPE_CHECKING:
    from evo_core.config import LawConfig

SMALL_TALK_WORDS = frozenset(
    "hello hi hey hiya greetings thanks thank thx bye goodbye morning evening night cheers "
    "welcome sorry please nice".split()
)
SMALL_TALK_PHRASES = ("how are you", "who are you", "what's up", "how is it going", "nice to meet")
MAX_SMALL_TALK_WORDS = 8
MAX_PROMPT_CHARS = 300
LAW_PROMPTS_FROM_STORE = 3
STOP_WORDS = frozenset(
    """a an the and or but if then so of to in on at by for with from into about as is are was were
    be been being am do does did done have has had having it its it's this that these those there
    here i me my mine you your yours we our us he him his she her they them their what which who
    whom whose where when why how not no yes can could will would shall should may might must
    very just also too than more most some any all each every one ones own same such only
    well like really sure okay ok please thank thanks""".split()
)
_WORDS = re.compile(r"\w+(?:[-']\w+)*")


@dataclass
class Draft:
    probes: ProbeSet
    todo: list[str] = field(default_factory=list)  # where a person must still decide
    notes: list[str] = field(default_factory=list)  # what the draft did that a person should know


@dataclass
class _Fact:
    answer: str
    questions: list[str] = field(default_factory=list)
    karmas: list[float] = field(default_factory=list)
    last_cycle: int = -1
    first_cycle: int = 1 << 62

    @property
    def karma(self) -> float:
        return sum(self.karmas) / len(self.karmas)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def is_small_talk(prompt: str) -> bool:
    """A short prompt with a greeting or courtesy word (the tone probes' kind)."""
    low = _norm(prompt)
    words = _WORDS.findall(low)
    if not words or len(words) > MAX_SMALL_TALK_WORDS:
        return False
    return bool(SMALL_TALK_WORDS.intersection(words)) or any(p in low for p in SMALL_TALK_PHRASES)


def expected_word(question: str, answer: str) -> str | None:
    """The answer's last word that is not a common word and not in the question (None: none)."""
    asked = {w.lower() for w in _WORDS.findall(question)}
    for word in reversed(_WORDS.findall(answer)):
        low = word.lower()
        if low in STOP_WORDS or low in asked or len(word) < 2 or word.startswith("_"):
            continue
        return str(word)
    return None


def _pairs(conv: Conversation) -> list[tuple[str, str]]:
    out = []
    messages = conv.messages
    for here, after in zip(messages, messages[1:]):
        if here.role == "user" and after.role == "assistant" and here.content.strip() and after.content.strip():
            out.append((here.content.strip(), after.content.strip()))
    return out


def draft_probes(
    conversations: Sequence[Conversation],
    laws: Sequence[LawConfig],
    *,
    recall: int = 20,
    generalize: int = 10,
    tone: int = 6,
) -> Draft:
    """The draft (see the module doc); it passes every rule of a probes file but the TODO one."""
    from evo_core.config import broken_laws

    tempting = {_norm(p) for law in laws for p in law.tempting}
    facts: dict[str, _Fact] = {}
    small_talk: Counter[str] = Counter()
    broke: dict[str, list[str]] = {law.name: [] for law in laws}
    for conv in sorted(conversations, key=lambda c: (c.cycle, c.id)):
        pairs = _pairs(conv)
        for prompt, answer in pairs:
            for name in broken_laws(laws, answer):
                if prompt not in broke[name] and len(prompt) <= MAX_PROMPT_CHARS:
                    broke[name].append(prompt)
        if conv.karma < 0:
            continue
        if len(pairs) == 1 and is_small_talk(pairs[0][0]):
            small_talk[pairs[0][0]] += 1
            continue
        for prompt, answer in pairs:
            if (
                len(prompt) > MAX_PROMPT_CHARS
                or is_small_talk(prompt)
                or _norm(prompt) in tempting
                or broken_laws(laws, answer)
            ):
                continue
            fact = facts.setdefault(_norm(answer), _Fact(answer))
            if all(_norm(q) != _norm(prompt) for q in fact.questions):
                fact.questions.append(prompt)
            fact.karmas.append(conv.karma)
            fact.last_cycle = max(fact.last_cycle, conv.cycle)
            fact.first_cycle = min(fact.first_cycle, conv.cycle)

    todo: list[str] = []
    notes: list[str] = []
    usable = [f for f in facts.values() if expected_word(f.questions[0], f.answer)]
    newest = sorted(usable, key=lambda f: (-f.last_cycle, -f.karma, f.answer))[:generalize]
    held = {id(f) for f in newest}
    best = sorted(
        (f for f in usable if id(f) not in held), key=lambda f: (-f.karma, f.first_cycle, f.answer)
    )[:recall]
    if len(usable) < len(facts):
        notes.append(f"{len(facts) - len(usable)} answered questions skipped: no answer word to expect")

    recall_pairs: list[tuple[str, str]] = []
    recall_facts: list[int] = []
    asked = {_norm(f.questions[0]) for f in newest}  # a generalize question is never a recall one
    for fact in best:
        index = len(set(recall_facts))
        for question in fact.questions:
            word = expected_word(question, fact.answer)
            if word is None or _norm(question) in asked:
                continue
            asked.add(_norm(question))
            recall_pairs.append((question, word))
            recall_facts.append(index)
    generalize_pairs: list[tuple[str, str]] = []
    for fact in newest:
        question = fact.questions[0]
        word = expected_word(question, fact.answer)
        assert word is not None
        generalize_pairs.append((f"{TODO} reword (in words no conversation uses): {question}", word))
    if generalize_pairs:
        todo.append(f"generalize: reword each of the {len(generalize_pairs)} questions marked {TODO}")
    if not recall_pairs:
        recall_pairs.append((f"{TODO}: a question about something the agent learned", TODO))
        recall_facts = [0]
        todo.append("recall: no answered question in the store; write recall questions and their expected words")
    if not generalize_pairs:
        generalize_pairs.append((f"{TODO}: a held-out question about what the next window teaches", TODO))
        todo.append("generalize: write held-out questions about the material the next window brings")

    tone_prompts = [p for p, _ in sorted(small_talk.items(), key=lambda kv: -kv[1])][:tone]
    if not tone_prompts:
        tone_prompts = [f"{TODO}: a small-talk prompt, e.g. Hello!"]
        todo.append("tone: no small talk in the store; write a few small-talk prompts")

    law_prompts: list[str] = []
    seen: set[str] = set()
    for law in laws:
        mine = [*law.tempting, *broke[law.name][:LAW_PROMPTS_FROM_STORE]]
        if not mine:
            mine = [f"{TODO}: a prompt that tempts the law {law.name}"]
            todo.append(f"laws: no prompt tempts {law.name!r}; write one (or give the law `tempting` in config.toml)")
        for prompt in mine:
            if _norm(prompt) not in seen:
                seen.add(_norm(prompt))
                law_prompts.append(prompt)
    if not laws:
        notes.append("no [[laws]] in config.toml: no law prompt drafted, and no answer counts as a violation")

    probes = ProbeSet(
        recall=tuple(recall_pairs),
        recall_facts=tuple(recall_facts),
        generalize=tuple(generalize_pairs),
        tone=tuple(tone_prompts),
        laws=tuple(law_prompts),
    )
    check_probes(probes, allow_todo=True)
    return Draft(probes, todo, notes)
