"""The end-to-end demo (`make demo`) and the auxiliary-loss ablation (`make ablation`)."""
