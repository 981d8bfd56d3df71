"""Max for Live devices: the .amxd writer and reader, and the devices of the suite.

- ``amxd``: ``write_amxd`` / ``read_amxd`` (chunks ``ampf`` / ``meta`` / ``ptch``)
- ``max_objects``: the objects the devices use, with their inlet / outlet counts
- ``patcher``: a small builder for patchers, Live parameters and presentation views
- ``drums``: ``build_drums_device`` writes LatentDrums.amxd around ``nn~ drums.ts decode``
- ``validate``: ``validate_device`` lists what Live / Max would trip over
- ``preview``: ``draw_presentation`` draws the presentation view to a PNG (matplotlib)
"""
