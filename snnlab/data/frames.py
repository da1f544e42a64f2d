"""Event streams to frame tensors with tonic's transforms, and a data set wrapper doing it per item.

Pipeline (each step a tonic transform): optional ``Denoise(filter_time)`` (drop events with no
neighbour within 1 pixel and ``filter_time`` microseconds), ``Downsample(sensor_size,
target_size)`` (scale coordinates to the frame size), then ``ToFrame`` either by number of bins
(``n_time_bins=T``: the recording's span cut into T equal bins, as SpikingJelly's
``split_by='time'`` frames used by SEW ResNet and OTTT) or by a fixed ``time_window`` (e.g. 30 ms
frames for DVS Gesture in the MLF paper), padded or cut to T frames. Frame values are event counts
per pixel and polarity (channel 0 OFF, channel 1 ON).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from snnlab.checks import check_positive, check_timesteps
from snnlab.data.transforms import RandomTemporalDeletion, fix_frame_count

__all__ = ["EventsToFrames", "EventFramesDataset"]


class EventsToFrames:
    """Turn a tonic structured event array into a float32 tensor ``[T, 2, size, size]``.

    Parameters:
        sensor_size: the recording's ``(W, H, 2)`` (tonic's order).
        T: number of frames.
        size: frame side after ``tonic.transforms.Downsample`` (default: sensor width, no
            downsampling; the sensor must then be square).
        time_window_us: if given, frames of this many microseconds from the first event
            (``ToFrame(time_window=...)``), padded/cut to T; else ``ToFrame(n_time_bins=T)``.
        denoise_us: if given, ``tonic.transforms.Denoise(filter_time=denoise_us)`` first.
    """

    def __init__(self, sensor_size: tuple[int, int, int], T: int, *, size: int | None = None,
                 time_window_us: float | None = None, denoise_us: float | None = None):
        import tonic.transforms as tt

        self.sensor_size = tuple(int(s) for s in sensor_size)
        if len(self.sensor_size) != 3 or self.sensor_size[2] != 2:
            raise ValueError(f"sensor_size must be (W, H, 2), got {sensor_size!r}.")
        self.T = check_timesteps("T", T)
        if size is None:
            if self.sensor_size[0] != self.sensor_size[1]:
                raise ValueError(f"give size= for a non-square sensor {self.sensor_size}.")
            size = self.sensor_size[0]
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be an int >= 1, got {size!r}.")
        self.size = size
        self.time_window_us = None if time_window_us is None else check_positive("time_window_us", time_window_us)
        self.denoise_us = None if denoise_us is None else check_positive("denoise_us", denoise_us)
        steps: list[Callable] = []
        if self.denoise_us is not None:
            steps.append(tt.Denoise(filter_time=self.denoise_us))
        self.frame_sensor = (size, size, 2)
        if (size, size) != self.sensor_size[:2]:
            steps.append(tt.Downsample(sensor_size=self.sensor_size, target_size=(size, size)))
        self.pre = steps
        if self.time_window_us is not None:
            self.to_frame = tt.ToFrame(sensor_size=self.frame_sensor, time_window=self.time_window_us,
                                       include_incomplete=True)
        else:
            self.to_frame = tt.ToFrame(sensor_size=self.frame_sensor, n_time_bins=self.T)

    def __call__(self, events: np.ndarray) -> torch.Tensor:
        for step in self.pre:
            if len(events) == 0:
                break
            events = step(events)
        if len(events) == 0:
            return torch.zeros((self.T, 2, self.size, self.size), dtype=torch.float32)
        frames = torch.from_numpy(np.ascontiguousarray(self.to_frame(events), dtype=np.float32))
        return fix_frame_count(frames, self.T)

    def __repr__(self) -> str:
        how = (f"time_window={self.time_window_us:g}us" if self.time_window_us is not None
               else f"n_time_bins={self.T}")
        return (f"EventsToFrames(sensor={self.sensor_size}, T={self.T}, size={self.size}, {how}, "
                f"denoise_us={self.denoise_us})")


class EventFramesDataset(Dataset):
    """Wrap a data set of ``(events, label)`` into ``(frames [T, 2, H, W] float32, int label)``,
    optionally with random temporal deletion (``rtd_T`` frames kept, for training)."""

    def __init__(self, events_dataset, to_frames: EventsToFrames, *, rtd_T: int | None = None,
                 indices: np.ndarray | None = None):
        self.events_dataset = events_dataset
        self.to_frames = to_frames
        self.rtd = None if rtd_T is None else RandomTemporalDeletion(rtd_T)
        if self.rtd is not None and rtd_T > to_frames.T:
            raise ValueError(f"rtd_T={rtd_T} must be <= T={to_frames.T}.")
        self.indices = np.arange(len(events_dataset)) if indices is None else np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        events, label = self.events_dataset[int(self.indices[index])]
        frames = self.to_frames(events)
        if self.rtd is not None:
            frames = self.rtd(frames)
        return frames, int(label)
