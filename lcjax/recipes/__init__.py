"""Long-context training recipes from the papers: each a small library function with the paper's defaults.

  prolong.py       ProLong (Gao et al. 2024): long/short mixture by source, document masking, short-then-long
                   length schedule, SFT on short instructions
  abf.py           Effective Long-Context Scaling (Xiong et al. 2023, Llama 2 Long): RoPE adjusted base frequency
                   for continual pretraining, progressive length
  e2llm.py         E^2-LLM (Liu et al. 2024): per-sample RoPE scale and position offset augmentation (grain stage)
  untie_knots.py   Untie the Knots (Tian et al. 2024): knotted chunk shuffling + tracing objective (grain stage)
"""

from lcjax.recipes import e2llm, untie_knots  # noqa: F401  (register their grain augmentations)
