"""The network: encoders (the paper's, timm's, any module probed with hooks), the Dynamic
U-Net built around them, and safe checkpoints."""
