"""The reliability suite: hostile inputs, corruption detection, kill/resume, properties, fuzz."""
