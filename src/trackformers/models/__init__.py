"""The detection half every tracker shares (Deformable DETR family, plain PyTorch).

backbone             ResNet-18/34/50/101, frozen BatchNorm, torchvision parameter names
position_encoding    2-d sine / learned encodings, sine embedding of coordinates
deformable_transformer  encoder, decoder (any queries, masks, box refinement), two-stage
heads                MLP, residual FFN block, head initialisation
detector             DeformableDETR + DetectorConfig, pad_images
load                 load_detector: a detector from a model file
matcher, criterion   Hungarian matching and the set losses (focal, L1, GIoU, aux, two-stage)
postprocess, ap      top-k scored boxes in pixels, AP@0.5
train_detector       detector training (DetectorTraining for the engine, fit, evaluate_ap)
dab                  DAB anchor-box queries (MeMOTR, DAB-Deformable-DETR)
"""
