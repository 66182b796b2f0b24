"""What a step sees and returns: the run context, the step scope, and Action/Done/Plan."""
