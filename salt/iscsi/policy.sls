{#-
  iSCSI persistence policy of this minion, from pillar (see pillar.example):
  sessions to the listed targets must not reconnect at boot.

      salt '<minion>' state.apply iscsi.policy [test=True]

  Each rule becomes one iscsi.not_persistent state; a malformed policy fails with a
  comment naming the pillar key, before anything is changed.
-#}
{%- set policy = salt['pillar.get']('iscsi:policy', {}) %}
{%- set rule_keys = ['target', 'portal', 'initiator'] %}
{%- if policy is not mapping %}
iscsi-policy-malformed:
  test.fail_without_changes:
    - comment: {{ ('pillar iscsi:policy must be a mapping (keys: not_persistent, exceptions), not: ' ~ policy | tojson) | tojson }}
{%- elif policy.get('not_persistent', []) is string or policy.get('not_persistent', []) is not iterable or policy.get('not_persistent', []) is mapping %}
iscsi-policy-malformed:
  test.fail_without_changes:
    - comment: {{ ('pillar iscsi:policy:not_persistent must be a list of rules, not: ' ~ policy.not_persistent | tojson) | tojson }}
{%- elif not policy.get('not_persistent') %}
iscsi-policy-empty:
  test.succeed_without_changes:
    - comment: "No iSCSI policy in pillar (iscsi:policy:not_persistent is empty): nothing to enforce."
{%- else %}
{%-   set exceptions = policy.get('exceptions') %}
{%-   for rule in policy.get('not_persistent', []) %}
{%-     set state_id = 'iscsi-policy-not-persistent-' ~ loop.index %}
{%-     if rule is not mapping or 'target' not in rule or (rule.keys() | reject('in', rule_keys) | list) %}
{{ state_id }}:
  test.fail_without_changes:
    - comment: {{ ('pillar iscsi:policy:not_persistent item ' ~ loop.index ~ ' must be a mapping with "target" and optionally "portal", "initiator"; got: ' ~ rule | tojson) | tojson }}
{%-     else %}
{{ state_id }}:
  iscsi.not_persistent:
    - target_node_address: {{ rule.target | tojson }}
{%-       if rule.portal is defined %}
    - target_portal: {{ rule.portal | tojson }}
{%-       endif %}
{%-       if rule.initiator is defined %}
    - initiator_node_address: {{ rule.initiator | tojson }}
{%-       endif %}
{%-       if exceptions %}
    - exclude_target_node_address: {{ exceptions | tojson }}
{%-       endif %}
{%-     endif %}
{%-   endfor %}
{%- endif %}
