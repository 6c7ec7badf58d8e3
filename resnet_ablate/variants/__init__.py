"""What a variant is, without torch: its spec, the open registries (parts, variants,
probes), the papers' generated variants, plugins, and the hook that registers every
variant with timm when timm is imported."""
