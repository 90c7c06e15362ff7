"""Adaptation: task heads and peft adapters over a pretrained gfm backbone."""
