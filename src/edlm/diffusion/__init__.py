"""Masked diffusion: schedules, the forward process, SUBS, the reverse step and training losses."""

from edlm.diffusion.losses import ar_loss, mdlm_loss
from edlm.diffusion.process import forward_mask, masked_token_nll, subs_logprobs, unmask_step
from edlm.diffusion.schedules import CosineSchedule, LogLinearSchedule, antithetic_times, make_schedule

__all__ = ["ar_loss", "mdlm_loss", "forward_mask", "masked_token_nll", "subs_logprobs", "unmask_step",
           "CosineSchedule", "LogLinearSchedule", "antithetic_times", "make_schedule"]
