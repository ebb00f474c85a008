"""The utterance classifier: corpus, training, ONNX export and model card (see MODEL_CARD.md)."""
