"""Source types an ingestion spec can name. Each maps to (config dataclass, source class)."""
from pipeline.sources.base import Partition, RawInput, Source
from pipeline.sources.image_folder import ImageFolderConfig, ImageFolderSource
from pipeline.sources.manifest import ManifestConfig, ManifestSource
from pipeline.sources.webdataset_tars import WebDatasetConfig, WebDatasetSource

SOURCE_TYPES = {
    "image_folder": (ImageFolderConfig, ImageFolderSource),
    "manifest": (ManifestConfig, ManifestSource),
    "webdataset": (WebDatasetConfig, WebDatasetSource),
}

__all__ = ["Partition", "RawInput", "Source", "SOURCE_TYPES"]
