"""The lowest layer: vocabulary (target modes, thresholds, choices) and plain image arithmetic
(normalization, resampling, tiling) that every other part of core uses. Imports nothing
else from core."""
