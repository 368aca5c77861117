// --- covariates, field scale and the unstructured effect ---
int<lower=0> P; // number of covariates
matrix[D, P] X; // covariates at every area, standardised (mean 0, sd 1)
real<lower=0> beta_prior_sd; // normal(0, beta_prior_sd) prior on each coefficient
real<lower=0> field_sd_prior_scale; // half-normal prior scale of the field's sd
int<lower=0, upper=1> iid; // 1: add an unstructured area effect
