"""One image per backend: images, the container spec and its limits, the Docker engine, and `--runtime`."""

from harness.containers.client import (
    BACKEND_LABEL,
    MANAGED_LABEL,
    ContainerError,
    OutputCallback,
    engine_available,
    get_client,
)
from harness.containers.engine import (
    ContainerRun,
    default_user,
    managed_containers,
    remove_leftovers,
    run_container,
    run_harness,
)
from harness.containers.images import (
    BUILD_SESSIONS,
    DEFAULT_IMAGES,
    DOCKER_DIRS,
    ImageInfo,
    build_image,
    default_build_args,
    default_dockerfile,
    image_info,
    normalize_backend,
    project_root,
)
from harness.containers.spec import (
    ASCEND_CONTROL_DEVICES,
    ASCEND_DRIVER_MOUNTS,
    CONTAINER_BUILD_CACHE,
    CONTAINER_OUT,
    CONTAINER_SOLUTIONS,
    CONTAINER_SUITE,
    CONTAINER_USER,
    DEFAULT_SHM_SIZE,
    DEFAULT_TMPFS,
    PATH_OPTIONS,
    Limits,
    Mounts,
    container_spec,
    map_harness_args,
    map_path,
)

__all__ = [
    "ASCEND_CONTROL_DEVICES", "ASCEND_DRIVER_MOUNTS", "BACKEND_LABEL", "BUILD_SESSIONS", "CONTAINER_BUILD_CACHE",
    "CONTAINER_OUT", "CONTAINER_SOLUTIONS", "CONTAINER_SUITE", "CONTAINER_USER", "DEFAULT_IMAGES", "DEFAULT_SHM_SIZE",
    "DEFAULT_TMPFS", "DOCKER_DIRS", "MANAGED_LABEL", "PATH_OPTIONS", "ContainerError", "ContainerRun", "ImageInfo",
    "Limits", "Mounts", "OutputCallback", "build_image", "container_spec", "default_build_args", "default_dockerfile",
    "default_user", "engine_available", "get_client", "image_info", "managed_containers", "map_harness_args",
    "map_path", "normalize_backend", "project_root", "remove_leftovers", "run_container", "run_harness",
]  # fmt: skip
