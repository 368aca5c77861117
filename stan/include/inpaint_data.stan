// --- observations ---
int<lower=0, upper=D> N_obs; // number of observed outputs
array[N_obs] int<lower=1, upper=D> obs_idx; // observed positions (distinct)
vector[N_obs] y_obs; // observed values
int<lower=0, upper=1> estimate_sigma; // 1: estimate the noise sd
real<lower=0> sigma_fixed; // noise sd used when estimate_sigma = 0
real<lower=0> sigma_prior_scale; // half-normal prior scale when estimated
