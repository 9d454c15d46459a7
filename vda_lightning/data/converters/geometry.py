"""Pose, intrinsics and depth conventions of the training datasets, as pure numpy functions.

Our convention (data/README.md): K in pixels of the stored frame with pixel CENTRES at integer coordinates;
poses camera-to-world with OpenCV camera axes (x right, y down, z forward); depth = z along the optical axis.
Each function converts one published convention into ours; the converters cite where each comes from.

The checks at the end (`intrinsics_problem`, `rotation_problem`, `check_camera`) are what every sequence's K and
poses must pass before anything is written (`SequenceSpec.check` runs them for every converter, manifest and
folder layout): finite numbers, positive focal lengths, rotations orthonormal with det +1 within
`ROTATION_TOLERANCE`. A failure is one line naming the file, the frame and what is wrong.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ...trust import ReadError

ROTATION_TOLERANCE = 1e-4   # max |R^T R - I| and |det R - 1| of a rotation we write (float32 storage: ~1e-7)
QUATERNION_TOLERANCE = 1e-3  # |1 - norm| of a published unit quaternion (TartanAir prints 18 digits)

# Columns: the OpenCV camera axes (x right, y down, z forward) written in another camera's body axes.
NED_BODY_FROM_OPENCV = np.array([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]])   # body x forward, y right, z down
OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0])                         # x right, y up, z backward
PYTORCH3D_FROM_OPENCV = np.diag([-1.0, -1.0, 1.0])                      # x left, y up, z forward


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def rigid(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def invert_rigid(T: np.ndarray) -> np.ndarray:
    """Inverse of (..., 4, 4) rigid transforms: [R t]^-1 = [R^T, -R^T t] (exact, no general inverse)."""
    T = np.asarray(T, np.float64)
    out = np.zeros_like(T)
    Rt = np.swapaxes(T[..., :3, :3], -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -(Rt @ T[..., :3, 3:4])[..., 0]
    out[..., 3, 3] = 1.0
    return out


def quaternion_to_matrix(qx: float, qy: float, qz: float, qw: float, what: str = "quaternion",
                         error: type[Exception] = ReadError) -> np.ndarray:
    """Rotation matrix of a unit Hamilton quaternion x, y, z, w (renormalised); `error` naming `what` when its
    norm is not 1 within QUATERNION_TOLERANCE (zero, or numbers from other columns: a 6- or 8-column line)."""
    q = np.array([qw, qx, qy, qz], np.float64)
    with np.errstate(all="ignore"):  # an overflowing norm is simply not 1
        n = float(np.linalg.norm(q))
    if not abs(n - 1.0) <= QUATERNION_TOLERANCE:
        raise error(f"{what}: quaternion (qx qy qz qw) = ({qx:g} {qy:g} {qz:g} {qw:g}) has norm {n:.6g}, not 1")
    w, x, y, z = q / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def change_camera_axes(c2w: np.ndarray, axes_from_opencv: np.ndarray) -> np.ndarray:
    """Camera-to-world with OpenCV camera axes from one whose camera axes are another body frame.

    `axes_from_opencv` holds the OpenCV axes as columns in that body frame (e.g. NED_BODY_FROM_OPENCV), so a
    point p_cv in OpenCV camera coordinates is p_body = A p_cv and world = c2w_body A p_cv. The world frame is
    left as it is (relative poses do not depend on it)."""
    A = np.eye(4)
    A[:3, :3] = axes_from_opencv
    return np.asarray(c2w, np.float64) @ A


def pytorch3d_to_opencv_c2w(R: np.ndarray, T: np.ndarray) -> np.ndarray:
    """PyTorch3D world-to-view (row vectors: X_view = X_world @ R + T; camera +X left, +Y up, +Z forward) to
    our camera-to-world. In column form X_view = R^T X_world + T; flipping x and y gives OpenCV axes."""
    F = PYTORCH3D_FROM_OPENCV
    w2c = rigid(F @ np.asarray(R, np.float64).T, F @ np.asarray(T, np.float64).reshape(3))
    return invert_rigid(w2c)


def ndc_to_pixel_intrinsics(focal: tuple[float, float], principal: tuple[float, float], height: int, width: int,
                            fmt: str) -> np.ndarray:
    """PyTorch3D/Implicitron NDC intrinsics to our pixel K.

    NDC has +x left, +y up and +-1 at the image EDGES; "ndc_isotropic" scales both axes by half the SHORTER side,
    "ndc_norm_image_bounds" each axis by its own half size (Implicitron `FrameAnnotation.viewpoint`). In
    continuous pixel coordinates (pixel centres at +0.5) the principal point is half_size - p * scale; our
    integer-centre convention subtracts 0.5.
    """
    half = np.array([width / 2.0, height / 2.0])
    if fmt.lower() == "ndc_isotropic":
        scale = np.array([half.min(), half.min()])
    elif fmt.lower() == "ndc_norm_image_bounds":
        scale = half
    else:
        raise ValueError(f"unknown intrinsics_format {fmt!r} (ndc_isotropic or ndc_norm_image_bounds)")
    f = np.asarray(focal, np.float64).reshape(-1)
    f = np.repeat(f, 2) if f.size == 1 else f
    c = half - np.asarray(principal, np.float64).reshape(2) * scale - 0.5
    return intrinsics(f[0] * scale[0], f[1] * scale[1], c[0], c[1])


def opengl_projection_to_intrinsics(M: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel K (integer-centre convention) of an OpenGL projection matrix for a width x height image.

    x_ndc = (M00 x + M01 y + M02 z) / -z and y_ndc likewise with camera looking down -z; pixel u = (x_ndc + 1) W/2,
    v = (1 - y_ndc) H/2 in continuous coordinates. Hypersim's per-scene `M_proj` (metadata_camera_parameters.csv)
    uses this form; its tilt-shift cameras have M02, M12 != 0 (an off-centre principal point)."""
    M = np.asarray(M, np.float64)
    if abs(M[0, 1]) > 1e-9 or abs(M[1, 0]) > 1e-9:
        raise ValueError(f"projection matrix has skew terms ({M[0, 1]:g}, {M[1, 0]:g}); K would not be pinhole")
    return intrinsics(M[0, 0] * width / 2, M[1, 1] * height / 2,
                      (1 - M[0, 2]) * width / 2 - 0.5, (1 + M[1, 2]) * height / 2 - 0.5)


def ray_distance_to_z(distance: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Planar z-depth from the distance to the optical centre along each pixel's ray (Hypersim depth_meters):
    z = d / |K^-1 (u, v, 1)|, the ray direction scaled to z = 1."""
    H, W = distance.shape
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    x = (u - K[0, 2]) / K[0, 0]
    y = (v - K[1, 2]) / K[1, 1]
    return (np.asarray(distance, np.float64) / np.sqrt(x * x + y * y + 1.0)).astype(np.float32)


def disparity_to_depth(disparity: np.ndarray, focal_baseline: float) -> np.ndarray:
    """depth = f * B / disparity where the disparity is finite and positive; 0 (invalid) elsewhere."""
    d = np.asarray(disparity, np.float64)
    ok = np.isfinite(d) & (d > 0)
    return np.where(ok, focal_baseline / np.where(ok, d, 1.0), 0.0).astype(np.float32)


# -- checks of what a converter writes -------------------------------------------------------------------------

def intrinsics_problem(K: np.ndarray) -> str | None:
    """None if K is a pinhole matrix we can write: finite, fx and fy > 0, finite principal point, last row
    (0, 0, 1) and no y skew; else what is wrong (one phrase)."""
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3):
        return f"K has shape {K.shape}, not (3, 3)"
    if not np.isfinite(K).all():
        return "K holds non-finite numbers"
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        return f"focal lengths fx {K[0, 0]:g}, fy {K[1, 1]:g} must be positive"
    if K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1:
        return f"K is not a pinhole matrix (rows 2-3: {K[1].tolist()}, {K[2].tolist()})"
    return None


def rotation_problem(R: np.ndarray, tol: float = ROTATION_TOLERANCE) -> str | None:
    """None if R is a finite rotation (R^T R = I and det R = +1, each within `tol`); else what is wrong."""
    R = np.asarray(R, np.float64)
    if R.shape != (3, 3):
        return f"rotation has shape {R.shape}, not (3, 3)"
    if not np.isfinite(R).all():
        return "rotation holds non-finite numbers"
    with np.errstate(all="ignore"):  # huge entries overflow to inf: not a rotation either
        det = float(np.linalg.det(R))
        off = float(np.abs(R.T @ R - np.eye(3)).max())
    if off > tol or abs(det - 1.0) > tol:
        kind = "a reflection" if det < 0 else "not orthonormal"
        return f"rotation is {kind} (det {det:.6g}, max |R^T R - I| {off:.3g}; a rotation has det +1 within {tol:g})"
    return None


def pose_problem(T: np.ndarray, tol: float = ROTATION_TOLERANCE) -> str | None:
    """None if T is a finite rigid 4x4 transform (rotation as `rotation_problem`, last row 0 0 0 1)."""
    T = np.asarray(T, np.float64)
    if T.shape != (4, 4):
        return f"pose has shape {T.shape}, not (4, 4)"
    if not np.isfinite(T).all():
        return "pose holds non-finite numbers"
    if not np.array_equal(T[3], [0.0, 0.0, 0.0, 1.0]):
        return f"pose's last row is {T[3].tolist()}, not [0, 0, 0, 1]"
    return rotation_problem(T[:3, :3], tol)


def check_camera(K: np.ndarray | None, poses: np.ndarray | None, K_source: str, poses_source: str,
                 frame: Callable[[int], str], error: type[Exception] = ReadError) -> None:
    """`error` in one line `<source>: <frame>: <problem>` for the first K (one, or one per frame) or pose that
    fails `intrinsics_problem` / `pose_problem`; `frame(i)` names frame i."""
    if K is not None:
        Ks = np.asarray(K, np.float64)
        for i, Ki in enumerate(Ks[None] if Ks.ndim == 2 else Ks):
            why = intrinsics_problem(Ki)
            if why:
                raise error(f"{K_source}: {'all frames' if Ks.ndim == 2 else frame(i)}: {why}")
    if poses is not None:
        for i, T in enumerate(np.asarray(poses, np.float64)):
            why = pose_problem(T)
            if why:
                raise error(f"{poses_source}: {frame(i)}: {why}")
