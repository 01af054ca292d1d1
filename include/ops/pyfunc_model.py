"""MLflow models-from-code pyfunc: loads a state_dict checkpoint (weights_only) and predicts class probabilities.

MLflow copies this file into the logged model and executes it at load time, so loading never unpickles code.
The `model` package travels with the logged model through `code_paths` (this file may import nothing else of
the project). Input is what the task CSVs hold: columns ``f0``..``f63`` of integer pixel values 0..16 (pandas
reads them as int64); floats in the same 0..16 range are accepted too. Values are scaled exactly as in training
(``model.inference.pixels_to_input``: divided by 16). The logged signature names the columns with MLflow's
``Any`` type, so MLflow's own schema check (which refuses int64 against a double column) lets integer and float
columns through and this module checks them.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import set_model

N_FEATURES = 64
FEATURE_COLUMNS = tuple(f"f{i}" for i in range(N_FEATURES))


def pixel_array(model_input: Any) -> np.ndarray:
    """Rows of raw pixels (DataFrame with f0..f63, or an (N, 64) array) -> float32 (N, 64); ValueError naming what is wrong."""
    if isinstance(model_input, pd.DataFrame):
        missing = [c for c in FEATURE_COLUMNS if c not in model_input.columns]
        if missing:
            raise ValueError(f"missing pixel columns {missing[:5]}{'...' if len(missing) > 5 else ''}")
        frame = model_input[list(FEATURE_COLUMNS)]
        bad = [
            c
            for c in FEATURE_COLUMNS
            if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])
        ]
        if bad:
            kinds = sorted({str(frame[c].dtype) for c in bad})
            raise ValueError(f"pixel columns must be numbers (integers 0..16): {bad[:5]} are {kinds}")
        array = frame.to_numpy(dtype=np.float32)
    else:
        raw = np.asarray(model_input)
        if raw.dtype.kind not in "iuf":
            raise ValueError(f"pixel values must be numbers (integers 0..16), got dtype {raw.dtype}")
        array = raw.astype(np.float32)
        if array.ndim != 2 or array.shape[1] != N_FEATURES:
            raise ValueError(f"expected (N, {N_FEATURES}) pixel rows, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("pixel values must be finite numbers 0..16 (found NaN or infinity)")
    return array


class ContinualTransformerPyfunc(mlflow.pyfunc.PythonModel):
    """Input: rows of 64 raw pixel values 0..16 (columns f0..f63, int or float); output: (N, 10) probabilities."""

    def load_context(self, context: Any) -> None:
        """Load the checkpoint artifact (sha256-verified, weights_only) into an eval-mode model."""
        from model.inference import load_model

        self.model, self.config, self.meta = load_model(context.artifacts["checkpoint"])

    def predict(self, context: Any, model_input: Any, params: dict | None = None) -> Any:
        """Return class probabilities restricted to the classes learned so far."""
        from model.inference import pixels_to_input, predict_proba

        probs = predict_proba(
            self.model,
            pixels_to_input(pixel_array(model_input)),
            allowed_classes=self.meta.get("classes_seen"),
        )
        return probs.detach().cpu().numpy()


set_model(ContinualTransformerPyfunc())
