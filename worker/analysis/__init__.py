"""Static analysis: the engine and one module per analyzer."""
