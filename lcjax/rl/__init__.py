"""Reinforcement learning: policy losses (CISPO, GRPO, DAPO, PPO-clip, REINFORCE), verifiable rewards, rollouts
and the RL train step."""
