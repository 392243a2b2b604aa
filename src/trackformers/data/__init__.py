"""Data: file formats, dataset readers, training clips, the synthetic benchmark, frame sources.

  mot.py         MOTChallenge gt / result text, seqinfo.ini, seqmaps
  odgt.py        CrowdHuman .odgt annotations
  bdd.py         BDD100K MOT per-video JSON labels
  datasets.py    DanceTrack, SportsMOT, MOT17, MOT20, CrowdHuman, BDD100K, synthetic ->
                 list[Sequence] of FrameAnnotations (`load_dataset`)
  clips.py       ClipSampler (clip length schedule, stride) and the ClipDataset (torch)
  transforms.py  clip-consistent augmentation, normalisation, `resize_for_inference` (torch)
  synthetic.py   `trackformers synth`: the synthetic benchmark in the DanceTrack layout
  perturb.py     tracker-like result files from ground truth (for trying the evaluation)
  sources.py     frames from a video, image folder, webcam or MOT sequence (`read_frames`)

Only clips.py and transforms.py import torch.
"""
