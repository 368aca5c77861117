int<lower=1, upper=3> likelihood; // 1 gaussian, 2 poisson, 3 binomial
vector[likelihood == 1 ? N_obs : 0] y; // gaussian observations
array[likelihood == 1 ? 0 : N_obs] int<lower=0> counts; // poisson/binomial counts
array[likelihood == 3 ? N_obs : 0] int<lower=0> trials; // binomial trials
vector[N_obs] log_offset; // added to the linear predictor (log exposure)
real intercept_prior_mean; // normal prior on the intercept: mean
real<lower=0> intercept_prior_sd; // normal prior on the intercept: sd
real<lower=0> sigma_prior_scale; // half-normal prior scale of the gaussian sd
