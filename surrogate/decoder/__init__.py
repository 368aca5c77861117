"""The Stan interface: schema (keys, codes, parameter names) and exported-decoder JSON io; numpy only."""
