"""MLflow models-from-code pyfunc: loads a state_dict checkpoint (weights_only) and predicts class probabilities.

MLflow copies this file into the logged model and executes it at load time, so loading never unpickles code.
The `model` package travels with the logged model through `code_paths`.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
from mlflow.models import set_model


class ContinualTransformerPyfunc(mlflow.pyfunc.PythonModel):
    """Input: rows of 64 pixel values (0-16, columns f0..f63 or an (N, 64) array); output: (N, classes) probs."""

    def load_context(self, context: Any) -> None:
        """Load the checkpoint artifact (sha256-verified, weights_only) into an eval-mode model."""
        from model.inference import load_model

        self.model, self.config, self.meta = load_model(context.artifacts["checkpoint"])

    def predict(self, context: Any, model_input: Any, params: dict | None = None) -> Any:
        """Return class probabilities restricted to the classes learned so far."""
        import numpy as np
        import pandas as pd

        from model.inference import pixels_to_input, predict_proba

        if isinstance(model_input, pd.DataFrame):
            cols = [f"f{i}" for i in range(64)]
            array = model_input[cols].to_numpy(dtype=np.float32)
        else:
            array = np.asarray(model_input, dtype=np.float32)
        probs = predict_proba(
            self.model, pixels_to_input(array), allowed_classes=self.meta.get("classes_seen")
        )
        return probs.detach().cpu().numpy()


set_model(ContinualTransformerPyfunc())
