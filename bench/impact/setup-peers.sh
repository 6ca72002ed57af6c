#!/usr/bin/env bash
# Installs the two Python ports of CausalImpact, each into its own environment under
# bench/impact/ (never into Sidestep's): both install as the module `causalimpact`.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .peers/bin/python ] || { python3 -m venv .peers && .peers/bin/pip install -q pycausalimpact "pandas<2.1" "numpy<2"; }  # it calls DataFrame.applymap
[ -x .peers-tf/bin/python ] || { python3 -m venv .peers-tf && .peers-tf/bin/pip install -q tfcausalimpact; }
