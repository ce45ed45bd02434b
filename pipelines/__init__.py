"""agencyml's logic: pure functions over tables and typed params, plus one adapter per system."""
