"""End-to-end tests: `dspyops` commands run as real processes over their real interfaces."""
