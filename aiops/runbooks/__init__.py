"""Runbooks: step kinds and their validation (`steps`), sandboxed templates (`rendering`), ready-made steps for
common targets (`step_templates`), outgoing requests (`http`) and the engine that runs them (`engine`).

What people do to runbooks (create, start, approve, cancel, the kill switch) is in `aiops.services.runbooks`.
"""
