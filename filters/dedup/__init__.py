"""Dedup across a whole dataset: exact and near duplicates of text and images.

``dedup_table`` is the entry point; the signal functions are usable on their own.
"""
from filters.dedup.dedup import DedupConfig, dedup_table, signal_pairs
from filters.dedup.exact import normalize_text, text_hash
from filters.dedup.minhash import MinHasher, lsh_params, near_duplicate_text_pairs
from filters.dedup.shingles import jaccard, shingle_hashes, shingles, unique_sets, words
from filters.dedup.phash import hamming, near_duplicate_image_pairs, phash64
from filters.dedup.union_find import component_sizes, connected_components

__all__ = [
    "DedupConfig", "dedup_table", "signal_pairs", "normalize_text", "text_hash", "MinHasher",
    "jaccard", "lsh_params", "near_duplicate_text_pairs", "shingle_hashes", "shingles", "unique_sets",
    "words",
    "hamming", "near_duplicate_image_pairs", "phash64", "component_sizes", "connected_components",
]
