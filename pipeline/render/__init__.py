"""Rendering helpers shared by the OCR, HTML-document and chart sources.

``boxes`` and ``conversations`` turn ground truth (text, boxes, tables) into the
ChatML conversations trainers use; ``fonts`` and ``text_corpus`` feed the synthetic
generators; ``browser`` is the contained headless-Chromium pool; ``dom`` the layout
extraction run inside each rendered page.
"""
