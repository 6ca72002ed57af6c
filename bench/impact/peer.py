"""Runs inside a peer's own environment: `python peer.py series.npz count out.json`.

pycausalimpact and tfcausalimpact both install as the module `causalimpact`, so each lives in
its own virtual environment and this script is the only code they run.
"""

import json
import sys
import time
import warnings

import numpy as np
import pandas as pd
from causalimpact import CausalImpact

warnings.filterwarnings("ignore")
data = np.load(sys.argv[1])
count = int(sys.argv[2])
n_pre = int(data["n_pre"])
results = []
started = time.perf_counter()
for i in range(count):
    frame = pd.DataFrame({"y": data["y"][i], "x": data["x"][i]})
    last = len(frame) - 1
    try:
        ci = CausalImpact(frame, [0, n_pre - 1], [n_pre, last], model_args={"nseasons": 7})
    except TypeError:  # pycausalimpact takes seasons as a list of dicts
        ci = CausalImpact(frame, [0, n_pre - 1], [n_pre, last],
                          model_args={"nseasons": [{"period": 7}]})
    cumulative = ci.summary_data["cumulative"] if hasattr(ci, "summary_data") else None
    if cumulative is None:  # older pycausalimpact: run() then summary_data
        ci.run()
        cumulative = ci.summary_data["cumulative"]
    results.append({
        "effect": float(cumulative["abs_effect"]),
        "lower": float(cumulative["abs_effect_lower"]),
        "upper": float(cumulative["abs_effect_upper"]),
        "p": float(ci.p_value),
    })
elapsed = time.perf_counter() - started
json.dump({"results": results, "seconds": elapsed}, open(sys.argv[3], "w"))
