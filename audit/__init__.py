"""Checks a merchant, a sharer or an auditor runs outside the cloud: `mcode witness` and
`mcode verify`. Imports protocol/ and third-party libraries only, never cloud/, gateway/ or sim/."""
