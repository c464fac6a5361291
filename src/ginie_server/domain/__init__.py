"""Pure, synchronous trading logic: input in, new state and a list of events out."""
