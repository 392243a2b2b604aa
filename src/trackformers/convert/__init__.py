"""Official checkpoints -> trackformers model files (`trackformers convert --from NAME`).

Each format has a module with `convert(state_dict, overrides) -> Converted`; `cli.CONVERTERS`
lists them. Shared machinery (renames, explicit drops with reasons, shape and key checks):
`convert.common`.
"""
