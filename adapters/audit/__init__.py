"""What an auditor runs: ``evo verify`` (``verify.py``) and the HTML report (``report.py``)."""
