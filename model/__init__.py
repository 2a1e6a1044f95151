"""Model side: tokenizers, the chat template the data and the trainer share, and the InternVL model.

``tokenizer``/``chat_template``: token counting and the exact training sequence;
``config``/``build``: InternVLForConditionalGeneration from a checkpoint, a ViT + an LLM, or a preset;
``packed``: packed rows, attention isolation and the reweighted loss; ``freeze``: module groups;
``images``: tile pixels; ``checkpoint``: save_pretrained directories plain transformers loads.
"""
