// A map (sites or area centroids) with an exact GP prior: the baseline for
// areas_surrogate.stan on a GP-trained decoder.
//
// f = sigma_field * L_K eta_f over all D locations, eta_f ~ N(0, I), where
// L_K is the Cholesky factor of the unit-variance kernel matrix at
// lengthscale ell, fixed (ell_lower = ell_upper) or Uniform(ell_lower,
// ell_upper) (factorised at every gradient, O(D^3)). At the observed areas,
// eta = intercept + X beta + f (+ an unstructured effect) + log_offset enters
// a Gaussian, Poisson (log link) or binomial (logit link) likelihood. Compile
// with the include path stan/include.
functions {
  #include gp.stanfunctions
  #include areas.stanfunctions
}
data {
  #include gp_prior_data.stan
  #include observation_cells_data.stan
  
  #include observation_values_data.stan
  
  #include areas_data.stan
}
transformed data {
  check_observations(likelihood, counts, trials);
  matrix[N_obs, P] X_obs = X[obs_idx]; // covariates at the observed areas
  int fixed = ell_lower == ell_upper; // 1: the lengthscale is not inferred
  real jitter = 1e-6 * square(sigma_f); // added to the kernel's diagonal
  matrix[fixed ? D : 0, fixed ? D : 0] L_fixed;
  if (fixed) {
    L_fixed = cholesky_decompose(add_diag(gp_kernel(x, kernel, ell_lower,
                                                    sigma_f),
                                          jitter));
  }
}
parameters {
  vector[D] eta_f; // standardised field
  array[1 - fixed] real<lower=ell_lower, upper=ell_upper> ell_par; // lengthscale, if inferred
  real intercept; // mean of the linear predictor
  vector[P] beta; // coefficients of the standardised covariates
  real<lower=0> sigma_field; // sd of the spatial field
  vector[iid ? D : 0] u_raw; // standardised unstructured effects
  array[iid] real<lower=0> sigma_iid; // their sd
  array[likelihood == 1 ? 1 : 0] real<lower=0> sigma; // gaussian noise sd
}
transformed parameters {
  real ell = fixed ? ell_lower : ell_par[1]; // lengthscale
  // the field at every location
  vector[D] f = sigma_field
                * (fixed ? L_fixed * eta_f
                   : cholesky_decompose(add_diag(gp_kernel(x, kernel, ell,
                                                           sigma_f),
                                                 jitter))
                     * eta_f);
}
model {
  vector[D] u = iid_effect(u_raw, sigma_iid, D);
  eta_f ~ std_normal();
  // ell: uniform on its bounds
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

