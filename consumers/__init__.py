"""Consumer services: each reads kracked topics, runs one pure domain module, and writes results."""
