// --- periods, interaction and covariates ---
int<lower=1> T; // number of periods (the last may have no data: a forecast)
int<lower=0, upper=5> interaction; // 0 none; Knorr-Held 1 iid, 2 RW1 per area, 3 spatial per period, 4 spatial x RW1; 5 AR1 spatial fields
int<lower=1, upper=2> temporal; // temporal main effect: 1 RW1, 2 AR1
int<lower=0> P; // number of covariates
matrix[D * T, P] X; // covariates at every area-period (areas fastest), standardised
real<lower=0> beta_prior_sd; // normal(0, beta_prior_sd) prior on each coefficient
real<lower=0> field_sd_prior_scale; // half-normal prior scale of every effect's sd
// --- observations ---
int<lower=0, upper=D * T> N_obs; // number of observed area-periods
array[N_obs] int<lower=1, upper=D * T> obs_idx; // their cells, (period - 1) * D + area (distinct)
