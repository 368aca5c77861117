// An areal model with a proper CAR prior in the sparse form of Joseph's Stan
// case study: phi ~ N(0, (D - alpha W)^-1), alpha ~ Uniform(alpha_lower,
// alpha_upper), f = sigma_field * phi. Islands have precision 1 (independent
// N(0, 1) effects). At the observed areas, eta = intercept + X beta + f
// (+ an unstructured effect) + log_offset enters a Gaussian, Poisson (log
// link) or binomial (logit link) likelihood. Compile with the include path
// stan/include.
functions {
  #include gp.stanfunctions
  #include areas.stanfunctions
}
data {
  real<lower=0, upper=1> alpha_lower; // CAR dependence: Uniform(alpha_lower, alpha_upper)
  real<lower=alpha_lower, upper=1> alpha_upper; // (alpha_upper < 1)
  int<lower=1> D; // number of areas
  vector<lower=0>[D] degree; // neighbours of each area (1 for islands)
  vector[D] eigen; // eigenvalues of D^(-1/2) W D^(-1/2)
  #include graph_data.stan
  #include observation_cells_data.stan
  
  #include observation_values_data.stan
  
  #include areas_data.stan
}
transformed data {
  check_observations(likelihood, counts, trials);
  matrix[N_obs, P] X_obs = X[obs_idx]; // covariates at the observed areas
  if (!(alpha_lower < alpha_upper && alpha_upper < 1)) {
    reject("the CAR needs alpha_lower < alpha_upper < 1; found ",
           alpha_lower, " and ", alpha_upper);
  }
}
parameters {
  vector[D] phi; // CAR effects (unit scale)
  real<lower=alpha_lower, upper=alpha_upper> alpha; // spatial dependence
  real intercept; // mean of the linear predictor
  vector[P] beta; // coefficients of the standardised covariates
  real<lower=0> sigma_field; // sd of the spatial field
  vector[iid ? D : 0] u_raw; // standardised unstructured effects
  array[iid] real<lower=0> sigma_iid; // their sd
  array[likelihood == 1 ? 1 : 0] real<lower=0> sigma; // gaussian noise sd
}
transformed parameters {
  // the field at every area
  vector[D] f = sigma_field * phi;
}
model {
  vector[D] u = iid_effect(u_raw, sigma_iid, D);
  phi ~ sparse_car(alpha, node1, node2, degree, eigen);
  // alpha: uniform on its bounds
  intercept ~ normal(intercept_prior_mean, intercept_prior_sd);
  beta ~ normal(0, beta_prior_sd);
  sigma_field ~ normal(0, field_sd_prior_scale);
  u_raw ~ std_normal();
  sigma_iid ~ normal(0, field_sd_prior_scale);
  sigma ~ normal(0, sigma_prior_scale);
  target += observations_log_density(intercept + X_obs * beta + f[obs_idx]
                                     + u[obs_idx] + log_offset, likelihood,
                                     y, counts, trials, sigma);
}
generated quantities {
  // the linear predictor (without the offset) and its exponential
  vector[D] eta = intercept + X * beta + f + iid_effect(u_raw, sigma_iid, D);
  vector[D] rr = exp(eta);
  // pointwise log-likelihood of the observations
  vector[N_obs] log_lik = observations_log_lik(eta[obs_idx] + log_offset,
                                               likelihood, y, counts, trials,
                                               sigma);
}

