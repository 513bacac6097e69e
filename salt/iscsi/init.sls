# The iscsi formula: `state.apply iscsi` enforces this minion's pillar policy.
include:
  - iscsi.policy
