// A space-time disease map with exact spatial fields: BYM2 (Riebler et al.
// 2016), or the scaled ICAR (icar = 1), in the pairwise-difference form.
//
// At area i and period t, eta = intercept + x_it beta + s_i + gamma_t
// + epsilon_t + delta_it: s the spatial main effect, gamma + epsilon the
// temporal main effect of sd sigma_time (centred; gamma(2) prior), a share
// mix_time of it a RW1 (or a stationary AR1) over periods and the rest iid,
// summing to zero, and delta the
// interaction of Knorr-Held (2000), type I (iid), II (a sum-to-zero RW1 per
// area), III (a spatial field per period) or IV (a RW1 over periods of
// spatial increments, centred per area). With interaction 5, s_i is replaced
// by AR1 fields f_t = rho f_(t-1) + sqrt(1 - rho^2) u_t. Every spatial field
// u is a unit BYM2 (or scaled ICAR) field; the interaction's fields share one
// mixing rho_int. Observed area-periods enter a Gaussian, Poisson (log link)
// or binomial (logit link) likelihood with log_offset. Generated quantities
// give eta (without the offset) and rr = exp(eta) at every area-period.
// Compile with the include path stan/include.
functions {
  #include gp.stanfunctions
  #include areas.stanfunctions
  
  #include spacetime.stanfunctions
}
data {
  int<lower=0, upper=1> icar; // 1: scaled ICAR fields, 0: BYM2
  real<lower=0, upper=1> rho_lower; // BYM2 mixing: Uniform(rho_lower, rho_upper)
  real<lower=rho_lower, upper=1> rho_upper; // (must differ for BYM2)
  int<lower=1> D; // number of areas
  #include graph_data.stan
  #include spacetime_data.stan
  
  #include observation_values_data.stan
}
transformed data {
  check_observations(likelihood, counts, trials);
  check_spacetime(interaction, temporal, T);
  if (!icar && !(rho_lower < rho_upper)) {
    reject("BYM2 needs rho_lower < rho_upper; found ", rho_lower, " and ",
           rho_upper);
  }
  int F = spatial_fields(interaction, T); // unit spatial fields
  int F_int = F - (interaction == 5 ? T : 1); // of which the interaction's
  matrix[N_obs, P] X_obs = X[obs_idx]; // covariates at the observed cells
  matrix[T, T - 1] Q_time = sum_to_zero_basis(T);
  matrix[T - 1, T - 1] rw1_cov = rw1_covariance(Q_time);
  vector[D] inv_sqrt_scale = inv_sqrt(scale);
}
parameters {
  matrix[D, F] phi; // ICAR effects (unscaled), one column per field
  matrix[D, icar ? 0 : F] theta; // BYM2: unstructured effects
  array[icar ? 0 : 1] real<lower=rho_lower, upper=rho_upper> rho; // mixing of the main fields
  array[icar || F_int == 0 ? 0 : 1] real<lower=rho_lower, upper=rho_upper> rho_int; // of the interaction's
  real intercept; // mean of the linear predictor
  vector[P] beta; // coefficients of the standardised covariates
  real<lower=0> sigma_field; // sd of the spatial main effect
  vector[T - 1] time_free; // the temporal main effect in the sum-to-zero basis (centred)
  array[temporal == 2 ? 1 : 0] real<lower=-1, upper=1> rho_time; // AR1 autocorrelation of the temporal effect
  real<lower=0> sigma_time; // sd of the temporal main effect
  real<lower=0, upper=1> mix_time; // the RW1 / AR1 share of its variance (the rest: iid periods)
  matrix[D, interaction_columns(interaction, T)] int_raw; // type I/II standardised effects
  array[interaction >= 1 && interaction <= 4 ? 1 : 0] real<lower=0> sigma_int; // sd of the interaction
  array[interaction == 5 ? 1 : 0] real<lower=-1, upper=1> rho_fields; // AR1 autocorrelation of the fields
  array[likelihood == 1 ? 1 : 0] real<lower=0> sigma; // gaussian noise sd
}
transformed parameters {
  // the temporal main effect in each period (sums to zero)
  vector[T] time_effect = Q_time * time_free;
  // the structured effect at every area (rows) and period (columns)
  matrix[D, T] effect;
  {
    matrix[D, F] U;
    for (j in 1 : F) {
      if (icar) {
        U[ : , j] = phi[ : , j] .* inv_sqrt_scale;
      } else {
        real r = j <= F - F_int ? rho[1] : rho_int[1];
        U[ : , j] = sqrt(1 - r) * theta[ : , j]
                    + sqrt(r) * (phi[ : , j] .* inv_sqrt_scale);
      }
    }
    effect = spacetime_effect(U, int_raw, interaction, sigma_field,
                              rho_fields, time_effect, sigma_int);
  }
}
model {
  for (j in 1 : F) {
    phi[ : , j] ~ icar_components(node1, node2, comp_size, comp_members,
                                  island_idx);
  }
  to_vector(theta) ~ std_normal();
  // rho, rho_int: uniform on their bounds; rho_time, rho_fields on (-1, 1)
  intercept ~ normal(intercept_prior_mean, intercept_prior_sd);
  beta ~ normal(0, beta_prior_sd);
  sigma_field ~ normal(0, field_sd_prior_scale);
  time_free ~ multi_normal_cholesky(rep_vector(0, T - 1),
                                    sigma_time
                                    * temporal_factor(Q_time, rw1_cov,
                                                      temporal, rho_time,
                                                      mix_time));
  // boundary-avoiding (Chung et al. 2013): a few periods leave a funnel at 0
  sigma_time ~ gamma(2, 2 / field_sd_prior_scale);
  // mix_time: uniform
  to_vector(int_raw) ~ std_normal();
  sigma_int ~ normal(0, field_sd_prior_scale);
  sigma ~ normal(0, sigma_prior_scale);
  target += observations_log_density(intercept + X_obs * beta
                                     + to_vector(effect)[obs_idx]
                                     + log_offset, likelihood, y, counts,
                                     trials, sigma);
}
generated quantities {
  // the linear predictor (without the offset) and its exponential, cells
  // ordered (period - 1) * D + area
  vector[D * T] eta = intercept + X * beta + to_vector(effect);
  vector[D * T] rr = exp(eta);
  // pointwise log-likelihood of the observations
  vector[N_obs] log_lik = observations_log_lik(eta[obs_idx] + log_offset,
                                               likelihood, y, counts, trials,
                                               sigma);
}

