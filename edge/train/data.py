"""The training Dataset: crops cut exactly as the runtime cuts them, with targets in crop coordinates.

A sample is a positive (the tracker's jittered crop of a labelled face: landmarks, pose, track=1)
or, with probability `negative_fraction`, a crop that lost the face (track=0, landmark and pose
losses masked). The warp and the normalisation are edge.model.crop's, so what the network
learns is what it will see.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from edge.errors import DatasetError
from edge.model.spec import ModelSpec
from edge.model.crop import landmarks_to_crop, normalize_patch, pose_to_crop, warp_patch
from edge.train.augment import flip_patch, photometric, texture_patch
from edge.train.boxes import negative_box, positive_box
from edge.train.config import AugmentConfig
from edge.train.face_sets import FaceSet


class CropDataset(Dataset):
    """Index i is a face (sources concatenated); which crop of it you get is random."""

    def __init__(self, sources: List[FaceSet], spec: ModelSpec, augment: AugmentConfig,
                 negative_fraction: float, seed: int = 0) -> None:
        self.sources = sources
        self.spec = spec
        self.augment = augment
        self.negative_fraction = negative_fraction
        self.index: List[Tuple[int, int]] = [(s, r) for s, src in enumerate(sources) for r in range(len(src.records))]
        if not self.index:
            raise DatasetError("no training faces: check data.helen_train (a folder of images with .pts files)")
        self.rng = np.random.default_rng(seed)
        self._images: Dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.index)

    def sample_weights(self) -> torch.Tensor:
        """Per-face draw weights so each source gets its share whatever its size."""
        sizes = [len(s.records) for s in self.sources]
        return torch.tensor([self.sources[s].share / sizes[s] for s, _ in self.index], dtype=torch.double)

    def __getitem__(self, i: int) -> Dict[str, np.ndarray]:
        s, r = self.index[i]
        source = self.sources[s]
        record = source.records[r]
        image, offset = self._image(record.image_path, source)
        face = record.landmarks + offset
        size = self.spec.input_size
        pose = np.zeros(3, np.float32)
        landmarks = np.zeros((self.spec.num_landmarks, 2), np.float32)
        if self.rng.random() < self.negative_fraction:
            patch = self._negative(image, face)
            weight, pose_mask, track = 0.0, 0.0, 0.0
        else:
            box = positive_box(face, self.spec.crop_scale, self.augment, self.rng)
            patch, matrix = warp_patch(image, box, size)
            landmarks = landmarks_to_crop(face, matrix, size) * size
            if record.pose_deg is not None:
                pose = pose_to_crop(record.pose_deg, box.angle_deg)
            weight, pose_mask, track = source.landmark_weight, float(record.pose_deg is not None), 1.0
        if self.rng.random() < self.augment.flip_prob:
            patch, landmarks, pose = flip_patch(patch, landmarks, pose)
        patch = photometric(patch, self.augment, self.rng)
        return {
            "crop": normalize_patch(patch, self.spec),
            "landmarks": (landmarks / size).astype(np.float32),
            "pose": pose.astype(np.float32),
            "landmark_weight": np.float32(weight),
            "pose_mask": np.float32(pose_mask),
            "track": np.float32(track),
        }

    def _negative(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        box = negative_box(landmarks, image.shape[:2], self.spec.crop_scale, self.rng)
        if box is None:
            return texture_patch(self.spec.input_size, self.rng)
        return warp_patch(image, box, self.spec.input_size)[0]

    def _image(self, path: str, source: FaceSet) -> Tuple[np.ndarray, float]:
        """The decoded image (edge-padded if the source asks) and the landmark offset that padding adds."""
        image: Optional[np.ndarray] = self._images.get(path)
        if image is None:
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is None:
                raise DatasetError(f"{path}: cannot read the image; check the dataset folder")
            if source.cache_images:
                self._images[path] = image
        pad = int(round(source.edge_pad * max(image.shape[:2])))
        if pad:
            image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        return image, float(pad)


def seed_worker(worker_id: int) -> None:
    """Each DataLoader process draws its own crops (torch seeds it; numpy follows), on one OpenCV thread."""
    cv2.setNumThreads(1)
    info = torch.utils.data.get_worker_info()
    info.dataset.rng = np.random.default_rng(torch.initial_seed() % 2 ** 63)
