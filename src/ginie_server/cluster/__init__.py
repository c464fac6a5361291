"""Cluster mode (SPEC section 7, `docs/cluster.md`): nodes sharing PostgreSQL and Redis.

- `lease`: engine ownership, a lease in PostgreSQL with a fencing token that every journal
  commit checks;
- `broker`: Redis Streams between nodes: committed user events, market data, commands and
  their answers;
- `snapshots`: REST snapshots read from PostgreSQL, the same on every node;
- `node`: a node's role, taking the engine over and handing it back.
"""
