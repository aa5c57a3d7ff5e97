/** `navigator` global (flag `global_navigator`) */
export class Navigator {
  readonly userAgent = "Cloudflare-Workers";
}
