// --- observations ---
int<lower=0, upper=D> N_obs; // number of observed cells
array[N_obs] int<lower=1, upper=D> obs_idx; // observed cells (distinct)
