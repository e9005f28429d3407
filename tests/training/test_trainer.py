"""The trainer: LoRA-only updates, a falling loss, reproducible weights, the output folder."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from adapters.training.spec import Distill
from adapters.training.teacher_cache import TeacherCache, load_model
from adapters.training.trainer import add_lora, train, train_step

OUTPUTS = ("weights", "adapter", "train_args.json", "evo_manifest.json", "training.json")


def _student(spec):  # type: ignore[no-untyped-def]
    model = add_lora(load_model(spec.parent_dir), spec.lora, spec.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    return model, torch.optim.AdamW(params, lr=spec.learning_rate)


def test_gradient_flows_only_into_lora(make_spec, cache_path) -> None:  # type: ignore[no-untyped-def]
    spec = make_spec()
    model, opt = _student(spec)
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    assert base and all(not p.requires_grad for n, p in model.named_parameters() if n in base)
    cache = TeacherCache(cache_path)
    train_step(model, opt, cache.batch(list(spec.example_ids[:4])), spec.distill, 0.3, "cpu")
    for name, p in model.named_parameters():
        if name in base:
            assert p.grad is None and torch.equal(p, base[name]), name
        else:
            assert "lora_" in name and p.grad is not None and torch.isfinite(p.grad).all()
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in lora_b)  # B starts at zero: the step moved it


def test_loss_falls_on_a_fixed_batch(make_spec, cache_path) -> None:  # type: ignore[no-untyped-def]
    spec = make_spec(learning_rate=2e-2)
    model, opt = _student(spec)
    batch = TeacherCache(cache_path).batch(list(spec.example_ids[:4]))
    distill = Distill(alpha=0.5, beta=0.5, temperature=2.0, stabilizer_weight=0.3)
    losses = [float(train_step(model, opt, batch, distill, 0.3, "cpu").total) for _ in range(20)]
    assert losses[-1] < 0.9 * losses[0] and sum(losses[-5:]) < sum(losses[:5]), losses


def test_outputs_and_merged_model(make_spec, models) -> None:  # type: ignore[no-untyped-def]
    seen: list[dict] = []
    spec = make_spec()
    result = train(spec, seen.append)
    assert result.status == "finished", result.reason
    out = Path(spec.out_dir)
    assert all((out / name).exists() for name in OUTPUTS)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (out / "weights").iterdir()}
    assert (out / "adapter" / "adapter_config.json").exists()
    assert not list(out.rglob("*.tmp"))

    assert [s["step"] for s in seen] == list(range(1, spec.steps + 1))
    assert set(seen[0]) == {"candidate", "step", "steps", "loss", "tokens", "budget_left"}
    assert set(seen[-1]["budget_left"]) == {"steps", "walltime", "gpu_memory", "tokens", "disk"}
    assert seen[-1]["budget_left"]["steps"] == spec.budget.max_steps - spec.steps

    merged, parent = load_model(str(out / "weights")), load_model(models["parent"])
    assert type(merged).__name__ == "LlamaForCausalLM"
    mp, pp = merged.state_dict(), parent.state_dict()
    assert mp.keys() == pp.keys()
    changed = [k for k in mp if not torch.equal(mp[k], pp[k])]
    assert changed and all(("q_proj" in k or "v_proj" in k) for k in changed)

    manifest = json.loads((out / "evo_manifest.json").read_text())
    assert manifest["evolution_request"] == {
        "gen_id": 2, "branch_id": "a", "candidate": "w1-a", "parent": "G001", "grandparent": "G000", "window": 1,
    }
    strategy = manifest["training_strategy"]
    assert strategy["method"] == "teacher_student_distillation" and strategy["stabilizer_weight"] == 0.3
    assert len(manifest["parents"]["primary_teacher"]["blake3"]) == 64
    assert manifest["parents"]["stabilizer"]["gen"] == "G000"
    assert manifest["data"] == {"new_conversations": 16, "replay_samples": 8, "total_examples": 24,
                                "data_delta_blake3": "d" * 64}
    stats = json.loads((out / "training.json").read_text())
    assert stats["steps"] == result.stats.steps == spec.steps and stats["status"] == "finished"
    assert stats["tokens_processed"] == result.budget_used.tokens_processed > 0
    assert stats["loss_start"] == result.stats.loss_start and stats["peak_memory_gb"] > 0
    assert result.budget_used.disk_gb > 0 and result.budget_used.steps == spec.steps
    args = json.loads((out / "train_args.json").read_text())
    assert args["seed"] == spec.seed and args["lora"]["r"] == 4


def _weights(spec) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    result = train(spec)
    assert result.status == "finished", result.reason
    return load_file(str(Path(spec.out_dir) / "weights" / "model.safetensors"))


def test_same_seed_same_weights_other_seed_other_weights(make_spec) -> None:  # type: ignore[no-untyped-def]
    a, b, c = _weights(make_spec(seed=5)), _weights(make_spec(seed=5)), _weights(make_spec(seed=6))
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_first_window_without_stabilizer(models, corpus, make_spec, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from adapters.training.teacher_cache import build_cache

    path = tmp_path / "solo.safetensors"
    build_cache(models["parent"], None, corpus, str(path), max_seq_len=48, top_k=16)
    spec = make_spec(cache_path=str(path), stabilizer=None, stabilizer_dir=None, steps=2)
    result = train(spec)
    assert result.status == "finished", result.reason
    manifest = json.loads((Path(spec.out_dir) / "evo_manifest.json").read_text())
    assert manifest["parents"]["stabilizer"] is None
    assert manifest["training_strategy"]["stabilizer_weight_effective"] == 0.0


def test_a_failing_spec_is_a_failed_result(make_spec, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = train(make_spec(parent_dir=str(tmp_path / "nowhere")))
    assert result.status == "failed" and "nowhere" in result.reason and "\n" not in result.reason
    bad_cache = train(make_spec(example_ids=("not-cached",)))
    assert bad_cache.status == "failed" and "not in the teacher cache" in bad_cache.reason
    mismatch = train(make_spec(stabilizer=None, stabilizer_dir=None))
    assert mismatch.status == "failed" and "stabilizer" in mismatch.reason
    other = train(make_spec(parent_hash="0" * 64))
    assert other.status == "failed" and "built from another parent" in other.reason


def test_worker_sends_progress_then_the_result(make_spec) -> None:  # type: ignore[no-untyped-def]
    import multiprocessing

    import msgspec

    from adapters.training.spec import TrainResult
    from adapters.training.worker import main

    spec = make_spec(steps=2)
    receiver, sender = multiprocessing.Pipe(duplex=False)
    main(msgspec.json.encode(spec), sender)
    messages = []
    while True:
        try:
            messages.append(receiver.recv())
        except EOFError:  # the worker closed its end after the result
            break
    assert [m[0] for m in messages[:-1]] == ["progress"] * (len(messages) - 1) and messages[-1][0] == "result"
    assert [m[1]["step"] for m in messages[:2]] == [1, 2]  # the training steps, then the export's steps
    exported = [m[1] for m in messages[2:-1]]
    assert {p["export"] for p in exported} >= {"export", "parity"}
    assert all(p["candidate"] == spec.candidate and 0 <= p["done"] <= (p["total"] or p["done"]) for p in exported)
    result = msgspec.json.decode(messages[-1][1], type=TrainResult)
    assert result.status == "finished" and result.candidate == spec.candidate
    receiver, sender = multiprocessing.Pipe(duplex=False)
    main(b"{not json", sender)
    kind, payload = receiver.recv()
    assert kind == "result" and msgspec.json.decode(payload, type=TrainResult).status == "failed"


def test_worker_in_a_spawned_process(make_spec) -> None:  # type: ignore[no-untyped-def]
    """What the lead's pool does: a fresh interpreter, the spec as bytes, a one-way pipe."""
    import multiprocessing

    import msgspec

    from adapters.training.spec import TrainResult
    from adapters.training.worker import main

    spec = make_spec(steps=2)
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=main, args=(msgspec.json.encode(spec), sender))
    proc.start()
    sender.close()
    messages = []
    while True:
        try:
            messages.append(receiver.recv())
        except EOFError:
            break
    proc.join(60)
    assert proc.exitcode == 0
    assert [m[0] for m in messages[:-1] if "step" in m[1]] == ["progress", "progress"] and messages[-1][0] == "result"
    assert msgspec.json.decode(messages[-1][1], type=TrainResult).status == "finished"
    assert (Path(spec.out_dir) / "weights" / "model.safetensors").exists()
