"""Hydra config groups of the harness (model, data, init, norm, optimizer, train, device,
experiment); a package only so that the YAML files ship with the install. Config layer.
"""
