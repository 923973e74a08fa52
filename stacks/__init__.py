"""CDK stacks and constructs of the platform."""

import warnings

# jsii's runtime type checks cannot check CDK's interface protocols and say so on every
# call; the warnings carry no information about this app.
warnings.filterwarnings("ignore", message="Typeguard cannot check the .* protocol")
