{#-
  Reactor: a minion's iscsi beacon reports that the host breaks the minion's policy
  (tag salt/beacon/<minion id>/iscsi/violation, fired again with backoff until the policy
  holds). Enforce THAT minion's pillar policy by applying the iscsi.policy formula to it,
  and only to it.

  Event as trigger, pillar as truth: nothing from the event's data reaches the job. The
  master authenticates the sending minion but not the tag or data it sends, so the minion
  id is taken from the tag, must equal data['id'] (set by the sending minion) and must be a
  plain minion id; the worst a forged event can cause is one more run of an idempotent
  state on a minion, deciding from that minion's own pillar.

  The job metadata marks the run as the reactor's: `salt-run iscsi.report` finds these
  runs in the master's job cache (its remediation history).

  Master config:
    reactor:
      - 'salt/beacon/*/iscsi/violation':
        - salt://reactor/iscsi_enforce.sls
-#}
{%- set parts = tag.split('/') %}
{%- set minion = parts[2] if parts | length == 5 else '' %}
{%- if parts[0] == 'salt' and parts[1] == 'beacon' and parts[3] == 'iscsi'
      and parts[4] in ('violation', 'registered')
      and minion is match('^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$')
      and data is mapping and data.get('id') == minion %}
iscsi-enforce-policy:
  local.state.apply:
    - tgt: {{ minion | tojson }}
    - tgt_type: list
    - args:
      - mods: iscsi.policy
      - queue: True
    - metadata:
        saltext_iscsi: reactor
{%- endif %}
