{#-
  iSCSI persistence policy of this minion, from pillar (see pillar.example):
  sessions to the listed targets must not reconnect at boot.

      salt '<minion>' state.apply iscsi.policy [test=True]

  The rules are parsed by the execution module (iscsi.policy_states), the same parser the
  beacon and the fleet report use. Each rule becomes one state; a malformed policy fails
  with a comment naming the pillar key, before anything is changed.
-#}
{%- set plan = salt['iscsi.policy_states']() %}
{%- if plan.error %}
iscsi-policy-malformed:
  test.fail_without_changes:
    - comment: {{ plan.error | tojson }}
{%- elif not plan.states %}
iscsi-policy-empty:
  test.succeed_without_changes:
    - comment: "No iSCSI policy in pillar (iscsi:policy has no rules): nothing to enforce."
{%- else %}
{%-   for state in plan.states %}
{{ state.id }}:
  {{ state.function }}:
{%-     for key, value in state.args.items() %}
    - {{ key }}: {{ value | tojson }}
{%-     endfor %}
{%-   endfor %}
{%- endif %}
