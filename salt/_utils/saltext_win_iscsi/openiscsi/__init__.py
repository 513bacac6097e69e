"""The Linux backend: open-iscsi's ``iscsiadm`` and its node database.

On Linux, persistence is a property of the node record, not of the session: a record
whose ``node.startup`` is ``automatic`` is logged in at boot. So "unregister a session"
sets the startup mode of the session's record to ``manual``, "register" sets it to
``automatic``, and the persistent-login list is the list of ``automatic`` records. Records
are never deleted.

Modules: ``iscsiadm`` (the runner and the argument checks), ``parse`` (iscsiadm's
output), ``persistence`` (the same functions as ``saltext_win_iscsi.windows.persistence``),
``nodedb`` (the beacon's cheap digest of the node database).
"""
