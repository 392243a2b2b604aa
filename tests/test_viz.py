"""FrameTracks (MOT lines, conversion from model output) and drawing / video / plot helpers."""
import cv2
import numpy as np
import torch

from trackformers.trackers.results import FrameTracks
from trackformers.viz import Trails, draw_tracks, id_color, plot_curves, write_video


def test_frame_tracks_from_model_output_and_mot_lines():
    # cxcywh (0.5, 0.25, 0.2, 0.1) on a 200x100 (w x h) frame -> x 80..120, y 20..30 pixels.
    result = {"ids": torch.tensor([0, 7]), "boxes": torch.tensor([[0.5, 0.25, 0.2, 0.1], [0.1, 0.9, 0.1, 0.2]]),
              "scores": torch.tensor([0.875, 0.5]), "labels": torch.tensor([0, 0])}
    ft = FrameTracks.from_model_output(3, result, (100, 200))  # ids count from 0: written + 1
    np.testing.assert_allclose(ft.boxes, [[80, 20, 120, 30], [10, 80, 30, 100]], atol=1e-4)
    assert ft.ids.tolist() == [1, 8]
    assert ft.to_mot_lines() == "3,1,80.00,20.00,40.00,10.00,0.875,-1,-1,-1\n3,8,10.00,80.00,20.00,20.00,0.5,-1,-1,-1\n"
    assert FrameTracks(5).to_mot_lines() == "" and len(FrameTracks(5)) == 0


def test_draw_colours_boxes_by_id_and_keeps_the_input():
    image = np.zeros((60, 80, 3), np.uint8)
    tracks = FrameTracks(1, boxes=[[10, 10, 40, 50]], scores=[0.9], labels=[0], ids=[4])
    out = tracks.draw(image)
    assert image.max() == 0  # drawing works on a copy
    assert tuple(out[30, 10]) == id_color(4)  # left edge, below the label
    assert out[30, 25].max() == 0  # inside the box stays untouched
    assert id_color(4) == id_color(4) and id_color(4) != id_color(5)


def test_trails_follow_centres_and_forget_lost_ids():
    trails = Trails(length=2)
    for x in (10, 20, 30):
        trails.update(FrameTracks(1, boxes=[[x, 0, x + 10, 10]], scores=[1], labels=[0], ids=[1]))
    assert list(trails.points[1]) == [(25, 5), (35, 5)]
    trails.update(FrameTracks(4))
    assert trails.points == {}
    image = draw_tracks(np.zeros((40, 60, 3), np.uint8), FrameTracks(1), trails)
    assert image.max() == 0


def test_write_video_and_plot(tmp_path):
    frames = [np.full((32, 48, 3), 40 * i, np.uint8) for i in range(5)]
    write_video(tmp_path / "v.mp4", frames, fps=5)
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (48, 32)
    png = plot_curves(tmp_path / "p.png", {"loss": ([1, 2, 3], [3, 2, 1])}, xlabel="step")
    assert cv2.imread(str(png)).shape[2] == 3
