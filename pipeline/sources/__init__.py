"""Source types an ingestion spec can name. Each maps to (config dataclass, source class)."""
from pipeline.sources.base import Partition, RawInput, Source
from pipeline.sources.charts import ChartsConfig, ChartsSource
from pipeline.sources.html_documents import HTMLDocumentsConfig, HTMLDocumentsSource
from pipeline.sources.image_folder import ImageFolderConfig, ImageFolderSource
from pipeline.sources.interleaved import InterleavedConfig, InterleavedSource
from pipeline.sources.manifest import ManifestConfig, ManifestSource
from pipeline.sources.ocr_images import OCRImagesConfig, OCRImagesSource
from pipeline.sources.ocr_synthetic import SyntheticOCRConfig, SyntheticOCRSource
from pipeline.sources.synthetic import SyntheticConfig, SyntheticSource
from pipeline.sources.video import VideoConfig, VideoSource
from pipeline.sources.web_urls import WebUrlsConfig, WebUrlsSource
from pipeline.sources.webdataset_tars import WebDatasetConfig, WebDatasetSource

SOURCE_TYPES = {
    "synthetic": (SyntheticConfig, SyntheticSource),  # scale tests: N tiny generated samples
    "synthetic_ocr": (SyntheticOCRConfig, SyntheticOCRSource),
    "ocr_images": (OCRImagesConfig, OCRImagesSource),
    "html_documents": (HTMLDocumentsConfig, HTMLDocumentsSource),
    "charts": (ChartsConfig, ChartsSource),
    "image_folder": (ImageFolderConfig, ImageFolderSource),
    "manifest": (ManifestConfig, ManifestSource),
    "webdataset": (WebDatasetConfig, WebDatasetSource),
    "web_urls": (WebUrlsConfig, WebUrlsSource),
    "interleaved": (InterleavedConfig, InterleavedSource),
    "video": (VideoConfig, VideoSource),
}

__all__ = ["Partition", "RawInput", "Source", "SOURCE_TYPES"]
