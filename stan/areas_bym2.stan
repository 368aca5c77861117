// An areal model with the BYM2 prior (Riebler et al. 2016), or the scaled
// ICAR (icar = 1), in the pairwise-difference form of Morris et al. (2019).
//
// phi is the ICAR with a soft sum-to-zero constraint per connected component;
// islands get independent N(0, 1) effects (Freni-Sterrantino et al. 2018).
// BYM2: f = sigma_field * (sqrt(1 - rho) * theta + sqrt(rho / s) .* phi)
// with theta ~ N(0, I), s the scaling factor of each area's component and
// rho ~ Uniform(rho_lower, rho_upper). ICAR: f = sigma_field * phi ./ sqrt(s).
// At the observed areas, eta = intercept + X beta + f (+ an unstructured
// effect, ICAR only) + log_offset enters a Gaussian, Poisson (log link) or
// binomial (logit link) likelihood. Compile with the include path
// stan/include.
functions {
  #include gp.stanfunctions
  #include areas.stanfunctions
}
data {
  int<lower=0, upper=1> icar; // 1: the scaled ICAR alone, 0: BYM2
  real<lower=0, upper=1> rho_lower; // BYM2 mixing: Uniform(rho_lower, rho_upper)
  real<lower=rho_lower, upper=1> rho_upper; // (must differ for BYM2)
  int<lower=1> D; // number of areas
  #include graph_data.stan
  #include observation_cells_data.stan
  
  #include observation_values_data.stan
  
  #include areas_data.stan
}
transformed data {
  check_observations(likelihood, counts, trials);
  matrix[N_obs, P] X_obs = X[obs_idx]; // covariates at the observed areas
  if (!icar && !(rho_lower < rho_upper)) {
    reject("BYM2 needs rho_lower < rho_upper; found ", rho_lower, " and ",
           rho_upper);
  }
  if (!icar && iid) {
    reject("BYM2 has an unstructured effect of its own: set iid = 0");
  }
  vector[D] inv_sqrt_scale = inv_sqrt(scale);
}
parameters {
  vector[D] phi; // ICAR effects (unscaled)
  vector[icar ? 0 : D] theta; // BYM2: unstructured effects
  array[icar ? 0 : 1] real<lower=rho_lower, upper=rho_upper> rho; // BYM2 mixing
  real intercept; // mean of the linear predictor
  vector[P] beta; // coefficients of the standardised covariates
  real<lower=0> sigma_field; // sd of the spatial field
  vector[iid ? D : 0] u_raw; // standardised unstructured effects (ICAR)
  array[iid] real<lower=0> sigma_iid; // their sd
  array[likelihood == 1 ? 1 : 0] real<lower=0> sigma; // gaussian noise sd
}
transformed parameters {
  // the field at every area
  vector[D] f = sigma_field
                * (icar ? phi .* inv_sqrt_scale
                   : sqrt(1 - rho[1]) * theta
                     + sqrt(rho[1]) * (phi .* inv_sqrt_scale));
}
model {
  vector[D] u = iid_effect(u_raw, sigma_iid, D);
  phi ~ icar_components(node1, node2, comp_size, comp_members, island_idx);
  theta ~ std_normal();
  // rho: uniform on its bounds
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

